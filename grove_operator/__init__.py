"""grove-operator: the process that serves Grove's admission webhooks (and, in later issues, runs the
controllers). `grove_operator.main` is the entry point; the pieces are small and separately testable."""
