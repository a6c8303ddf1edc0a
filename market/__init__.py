"""llm-market-sim: a multi-agent market simulator for LLM markets on asyncio."""

__version__ = "0.1.0"
