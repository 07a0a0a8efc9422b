"""Services behind the routes: the advice cache, job submission and limits, publishing to the
broker. Routes validate and translate; these do the work."""
