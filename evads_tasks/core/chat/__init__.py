"""Talking to OpenAI-compatible chat servers (vLLM, SGLang, llama.cpp, DashScope, OpenAI): the
one client under the judge and the Q&A generator (``client``), how it reads a hostile reply
(``replies``), fits a server's context and ``response_format`` (``server_fit``,
``response_format``), backs off when calls queue (``concurrency``) and times a run before it
starts (``preflight``)."""
