"""Reading a Prometheus text exposition in tests: scrape an endpoint, find a sample's value."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample by its name (`oai400d_findings_total`), with its labels and value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` with these labels, None if there is none."""
    found = [v for got, v in samples.get(name, []) if got == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())
