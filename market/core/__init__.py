"""Floor 1: pure market objects (messages, ledger, quality, mechanisms, learners, language models); no asyncio, no I/O."""
