"""The GPU benchmark's SKU reference table (``agent/wire/skus.toml``) and its fixed judgement."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from agent.wire.skus import TESTS, SkuTableError, default_table, parse_table

ISSUE_SKUS = {
    "h100_sxm",
    "h100_pcie",
    "h200_sxm",
    "h200_nvl",
    "b200",
    "a100_sxm4_40gb",
    "a100_sxm4_80gb",
    "l40s",
    "l4",
    "a10",
}


def _raw() -> dict:  # type: ignore[type-arg]
    text = resources.files("agent.wire").joinpath("skus.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def test_the_table_covers_the_fleets_skus_with_sources() -> None:
    table = default_table()
    assert set(table.skus) >= ISSUE_SKUS
    for sku in table.skus.values():
        assert sku.nvml_names and sku.pci_device_ids and sku.spec_source, sku.key
        assert set(sku.spec) <= set(TESTS) and set(sku.measured) <= set(TESTS)
        for measured in sku.measured.values():
            assert measured.source.startswith("["), (sku.key, measured)
        # a measured figure of a healthy part never exceeds its spec
        for test, measured in sku.measured.items():
            if test in sku.spec:
                assert measured.value <= sku.spec[test], (sku.key, test)


def test_a_gpu_is_found_by_device_id_then_by_name() -> None:
    table = default_table()
    assert table.find_sku(pci_device_id="0x233010de").key == "h100_sxm"  # type: ignore[union-attr]
    assert table.find_sku(pci_device_id="233510DE").key == "h200_sxm"  # type: ignore[union-attr]
    assert table.find_sku(name="NVIDIA A100-SXM-80GB").key == "a100_sxm4_80gb"  # type: ignore[union-attr]
    assert table.find_sku(name="NVIDIA H100 PCIe", pci_device_id="0x233010DE").key == "h100_sxm"  # type: ignore[union-attr]
    assert table.find_sku(name="NVIDIA GeForce RTX 4090") is None


def test_judgement_against_the_measured_reference_then_the_spec() -> None:
    table = default_table()
    h100 = table.skus["h100_sxm"]
    assert table.judge(h100, "matmul_bf16", 790).status == "pass"  # 0.99 x 795
    warn = table.judge(h100, "matmul_bf16", 700)  # 0.88 x
    assert (warn.status, warn.basis, warn.reference) == ("warn", "measured", 795)
    assert table.judge(h100, "matmul_bf16", 590).status == "fail"  # 0.74 x
    # the H100 PCIe has no measured GEMM: its spec decides, with the spec's fractions
    pcie = table.skus["h100_pcie"]
    verdict = table.judge(pcie, "matmul_bf16", 500)  # 0.66 x 756.5
    assert (verdict.status, verdict.basis) == ("pass", "spec")
    assert table.judge(pcie, "matmul_bf16", 400).status == "warn"  # 0.53 x
    assert table.judge(pcie, "matmul_bf16", 300).status == "fail"  # 0.40 x
    assert "0.40 x" in table.judge(pcie, "matmul_bf16", 300).reason
    # no reference, or no SKU: unjudged, never a guess
    assert table.judge(table.skus["a100_sxm4_80gb"], "matmul_fp8", 100).status == "unjudged"
    assert table.judge(None, "matmul_bf16", 100).status == "unjudged"
    with pytest.raises(ValueError, match="unknown benchmark test"):
        table.judge(h100, "matmul_int4", 1.0)


def test_a_malformed_table_is_refused_with_the_entry_named() -> None:
    data = _raw()
    data["sku"]["h100_sxm"]["spec"]["matmul_bf16"] = -1
    with pytest.raises(SkuTableError, match=r"\[sku.h100_sxm\].*positive"):
        parse_table(data)
    data = _raw()
    data["judging"]["measured_fail"] = 0.95
    with pytest.raises(SkuTableError, match="fail fraction"):
        parse_table(data)
    data = _raw()
    data["sku"]["l4"]["spec"]["matmul_fp12"] = 1.0
    with pytest.raises(SkuTableError, match=r"\[sku.l4\].*matmul_fp12"):
        parse_table(data)
