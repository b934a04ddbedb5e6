"""Notifications: alerts to Alertmanager, or to dcmon's own direct receivers.

Stage: alerting -> notify. The evaluator calls ``Notifier.send(alerts, now)`` (``service.py``)
with the alerts Prometheus' rule says are due. From there:

    alertmanager.py   every configured Alertmanager, v2 API, queued, retried
    dispatch.py       direct receivers: routing (route.py) and grouping timers
    pipeline.py       inhibition (inhibit.py), silences (silence.py), the notification
                      log (nflog.py), delivery with retries (delivery.py)
    webhook.py        Alertmanager's webhook payload v4
    apprise_receiver.py  chat, e-mail and paging through Apprise

Configuration is ``config.py`` (``[notify]`` in server.toml, a receivers file in
Alertmanager's format), assembled by ``build.py``. Silences and the notification log are
stored in the database (``silence_store.py``, ``nflog_store.py``); ``router.py`` and
``cli.py`` manage silences.
"""
