"""How runs are started: sweep directories and index, one sweep job, preemption, the population launcher."""
