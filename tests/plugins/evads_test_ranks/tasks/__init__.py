"""No tasks: lmms-eval's plugin variable requires the folder."""
