"""trace-analytics: ClickHouse-centered analytics for LLM and agent traces."""

__version__ = "0.1.0"
