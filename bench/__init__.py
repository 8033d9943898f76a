"""postdesk's benchmarks: throughput, latency, memory and scaling, measured against a ceiling.

``python -m bench`` runs them (see ``bench/__main__.py`` and ``docs/performance.md``). Each
benchmark is one module (``smtp``, ``process``, ``memory``, ``sweep``, ``outbound``) over
shared pieces: a seeded corpus (``corpus``), fresh databases (``stores``), server processes
(``procs``, ``sink``), the load client (``client``), profiles (``profile``, ``spy``) and the
tables (``report``). They print figures and never pass or fail on time.
"""
