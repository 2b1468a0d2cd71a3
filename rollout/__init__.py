"""`canary`: progressive delivery where every step is a stack config change applied by Pulumi."""
