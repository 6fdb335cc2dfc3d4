"""What every evads package shares: the annotation model (``annotations``), the judge
(``judge``: client, cache, protocols, accounting), the one chat-completions client, scoring
(R5/R3/R2/G), response parsing, redaction, text units, token estimates, the authors'
script reader, the video probe, and the statistics of a mean (``statistics``: intervals
clustered by video, paired differences) and of two judgements (``agreement``: exact,
kappa), which the tasks, runs and the judge canary share.

May import only the standard library, third-party libraries other than lmms-eval, and
itself: never ``evads_tasks.tasks``/``runs``/``sample``, ``evads_generate``,
``evads_density`` or ``evads_rl`` (``tests/test_layout.py``). Change it with care: all of
them build on it.
"""
