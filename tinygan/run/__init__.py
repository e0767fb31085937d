"""Host side of a run: atomic files, command-line helpers, run folders and locks, plots and reports; imports only engine."""
