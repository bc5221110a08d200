"""Parts of a projection (`dipsim.project`): each year's case changes, catalogue and levers."""
