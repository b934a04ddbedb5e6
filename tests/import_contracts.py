"""An import-linter contract type that import-linter lacks: an allowlist.

``forbidden`` contracts name what may not be imported, so a module added later is allowed until
someone remembers to list it. An ``allowlist`` contract names what may be imported instead:

    [[tool.importlinter.contracts]]
    type = "allowlist"
    source_modules = ["server"]          # these packages (with their descendants) ...
    target_package = "agent"             # ... may import from this package ...
    allowed_modules = ["agent"]          # ... only these modules (exactly) ...
    allowed_packages = ["agent.wire"]    # ... and these packages (with their descendants).

The allowed modules are held to the same rule, so nothing else in the target package is reached
through them: an allowlist that ``agent.wire`` could widen by importing ``agent.clock`` would
not be one. Registered in pyproject.toml under ``contract_types``; ``lint-imports`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import grimp
from importlinter import Contract, ContractCheck, fields, output


@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    line_numbers: tuple[int, ...]


class AllowlistContract(Contract):
    """Sources may import from the target package only the allowed modules and packages."""

    type_name = "allowlist"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    target_package = fields.ModuleField()
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)
    allowed_packages = fields.ListField(subfield=fields.ModuleField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        target = self.target_package.name  # type: ignore[attr-defined]
        if target not in graph.modules:
            raise ValueError(f"target package {target!r} is not in the import graph")
        allowed = self._allowed(graph)
        importers = set(allowed)
        for source in self.source_modules:  # type: ignore[attr-defined]
            if source.name not in graph.modules:
                raise ValueError(f"source module {source.name!r} is not in the import graph")
            importers |= {source.name, *graph.find_descendants(source.name)}
        violations = []
        for importer in sorted(importers):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                inside = imported == target or imported.startswith(target + ".")
                if inside and imported not in allowed:
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = tuple(sorted(detail["line_number"] for detail in details))
                    violations.append(Violation(importer, imported, lines))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            lines = ", ".join(f"l.{number}" for number in violation.line_numbers) or "l.?"
            output.print_error(
                f"{violation.importer} -> {violation.imported} ({lines}): not on the allowlist",
                bold=False,
            )
        output.new_line()

    def _allowed(self, graph: grimp.ImportGraph) -> set[str]:
        allowed = {module.name for module in self.allowed_modules or []}  # type: ignore[attr-defined]
        for package in self.allowed_packages or []:  # type: ignore[attr-defined]
            allowed |= {package.name, *graph.find_descendants(package.name)}
        missing = sorted(name for name in allowed if name not in graph.modules)
        if missing:
            raise ValueError(f"allowed modules not in the import graph: {', '.join(missing)}")
        return allowed
