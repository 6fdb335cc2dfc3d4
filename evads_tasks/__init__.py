"""E-VAds as an lmms-eval plugin, and the core the other evads packages share.

Layers, lowest first; a package imports only from the ones above it in this list
(``tests/test_layout.py`` checks it):

- ``core/``: the annotation model and loaders, the judge (client, cache, protocols),
  the chat client, scoring, redaction, the video probe. Imported by every other package;
  never imports lmms-eval or any other evads package.
- ``sample/``: the bundled sample dataset and the tiny random model (imports ``core``).
- ``tasks/``: the lmms-eval task folder (``--include_path``): YAMLs, ``utils.py`` and
  ``metrics.py`` (imports ``core``); ``models/``: the empty model table lmms-eval's
  ``LMMS_EVAL_PLUGINS`` asks of a plugin.
- ``runs/``: everything that reads a finished run: report, rescore, compare, agreement
  (imports ``core``, ``tasks``, ``sample``).
- ``lmms_eval_cli.py`` (the ``lmms_eval`` console script) and ``__main__.py``
  (``python -m evads_tasks``): the front doors.

Beside this package: ``evads_density`` (imports ``core`` and ``sample``),
``evads_generate`` (the Q&A generator: ``core`` and ``evads_density``) and ``evads_rl``
(``core``, ``sample``, ``tasks``, ``runs``).
"""
