"""Alerting and recording rules for dcmon: a pure core over the PromQL engine.

Flow: rule file text -> ``load`` (validated ``model`` types) -> ``group`` evaluates each group at
its interval through ``promql.Engine`` over any ``SeriesSource``, expanding ``template``s and
stepping the alert ``state`` machine -> samples (recording rules, ``ALERTS``,
``ALERTS_FOR_STATE``) and alerts. ``compile`` turns dcmon's extensions (hysteresis, no-data
policy) into plain PromQL, which both the evaluator and ``export`` use; ``ruletest`` runs
``promtool test rules`` files. No web framework, database or storage imports here.
"""
