"""PromQL for dcmon: a pure evaluator over a series seam.

Flow: text -> ``parse.parse`` (the promql-parser package's AST, mapped once into ``plan``) ->
``engine.Engine`` (instant and range evaluation over ``seam.SeriesSource``) -> ``values``.
No web framework or database imports here; the HTTP API and storage adapt to this core.
"""
