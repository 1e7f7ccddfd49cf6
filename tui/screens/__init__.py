"""The cockpit's screens: the run list, one run's dashboard, and the small dialogs."""
