"""Reading the platform's figures (GET /metrics) in tests, with Prometheus's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Every sample `/metrics` serves now, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")  # the text format
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def figure(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(value for (found, pairs), value in samples.items() if found == name and wanted <= set(pairs))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    """Every value `label` takes among the samples of `name`."""
    return {value for (found, pairs), _ in samples.items() if found == name for key, value in pairs if key == label}
