"""Facts: what was checked about an error and what it showed (issue 20).

- `text`: from the error's own text and the configured identity alone (no network): presigned
  URL expiry, private hosts, image formats and sizes, token and rate-limit arithmetic, key
  suffixes, organization and project ids. Used by `classify` and by the daemon.
- `probed`: from the daemon's own probes (the models list, the key verdict, the status page).
- `fetch`: one guarded request for an image URL, opt-in (`[diagnose] fetch_urls`).
- `order_fixes`: a rule's fixes, those the facts support first and those they rule out last.
"""

from __future__ import annotations

from oai400d.facts.ordering import order_fixes

__all__ = ["order_fixes"]
