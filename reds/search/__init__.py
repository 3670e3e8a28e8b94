"""Width search: the nested knapsack on OR-Tools CP-SAT and its Lagrangian filter."""
