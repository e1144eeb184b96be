"""Options: the generic option type (`types`), the table every `--editeval-*` option and ini twin is registered
from (`table`: the core's own options plus those the judge backends and benchmarks declare next to their code),
and their resolution into one run's settings (`settings`). Standard library only, so that pytest starts fast
when no benchmark is asked for."""
