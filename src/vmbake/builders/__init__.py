"""Builders: each module lists the steps of one builder type, in order (`steps(ctx) -> list[Step]`)."""
