"""The self-hosted LLM proposer: intent in, an untrusted change dict out (see docs/llm.md).

Nothing here trusts the model. Its answer becomes a change with source "llm" that goes
through exactly the same guards, static analysis and twin as a human's change.
"""
