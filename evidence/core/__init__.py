"""The Django-free core of evidence: canonical JSON, keys, DSSE, Merkle log, checkpoints,
bundles and the examiner PDF. Plain data in, plain data out; the Django shell
(`evidence/services.py`) adds rows and files around it."""
