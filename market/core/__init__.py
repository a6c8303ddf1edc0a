"""Floor 1: pure market objects (messages, ledger, quality, mechanisms, learners, language models).

No asyncio, no I/O.
"""
