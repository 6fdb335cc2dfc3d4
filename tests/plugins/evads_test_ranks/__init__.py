"""A test-only lmms-eval plugin (``LMMS_EVAL_PLUGINS=evads_test_ranks``, with ``tests/plugins``
on ``PYTHONPATH``): lmms-eval's ``dummy`` model with the ``.device`` its multi-rank evaluator
reads, so that ``accelerate launch --multi_gpu --num_processes 2`` runs two real ranks on a
machine without GPUs (lmms-eval's own ``dummy`` fails there: no attribute ``device``)."""
