"""Main-text extraction from HTML pages.

trafilatura is used because it leads the public extraction benchmarks (ScrapingHub's article-extraction
benchmark, Bevendorff et al. 2023) on F1 over boilerplate removal, keeps paragraph breaks, and needs no model
download. Its fallbacks (readability, jusText) run inside it when its own heuristics find too little.
"""

from __future__ import annotations

import logging

import trafilatura
from trafilatura.settings import use_config

_CONFIG = use_config()
# trafilatura's default is to give up after a signal-based timeout, which fails outside the main thread
_CONFIG.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
logging.getLogger("trafilatura").setLevel(logging.ERROR)


def extract_main_text(html: str | bytes, url: str | None = None) -> dict[str, str | None]:
    """Return {"text", "title"} of a page's main content; text is "" when nothing could be extracted."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", errors="replace")
    text = trafilatura.extract(
        html,
        url=url,
        config=_CONFIG,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
        deduplicate=False,
    )
    meta = trafilatura.extract_metadata(html, default_url=url)
    return {"text": text or "", "title": meta.title if meta is not None else None}
