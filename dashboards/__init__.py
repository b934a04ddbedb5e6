"""dcmon's own Grafana dashboards: the JSON files here, built by ``dashboards.generator``."""
