"""Search: the pose space, starting poses, one world and its gradient modes, worlds on Ray Tune, the grid
reference, and the driver that picks the winner by truth."""
