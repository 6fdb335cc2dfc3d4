"""The plugin's model table, as lmms-eval's ``LMMS_EVAL_PLUGINS`` reads it."""

AVAILABLE_MODELS = {"dummy_on_cpu": "DummyOnCpu"}
