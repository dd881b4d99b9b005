"""Token-level metrics of one LLM trace: see :mod:`tpusim.llm_tokens` (kept outside this package
so that ``tpusim run`` can read a step's tokens without importing the serving stack and pandas)."""
from ..llm_tokens import llm_step, token_metrics  # noqa: F401
