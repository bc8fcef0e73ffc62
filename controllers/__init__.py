"""Controllers: everything that turns input into a pose each tick (see DESIGN.md)."""
