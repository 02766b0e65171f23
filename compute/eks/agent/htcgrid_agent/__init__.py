"""htcgrid's worker agent: takes tasks from the grid's priority queues and runs them.

``worker`` is the fetch, claim, run, report, acknowledge loop; ``slots`` runs handlers in
child processes (one per concurrent task, so a hung handler can be stopped); ``reporter``
batches acknowledgements and result notices; ``context`` is the Lambda-compatible context.
"""
