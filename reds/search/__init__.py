"""Width search: the nested knapsack on OR-Tools CP-SAT and its Lagrangian filter.
(This file imports no OR-Tools: the CLI reads MODES.)"""

MODES = ("bottom-up", "top-down", "joint")  # how reds.search.knapsack orders the budgets
