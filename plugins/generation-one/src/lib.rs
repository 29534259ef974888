//! Generation one of the hot-swap test plugin.

generations::generation!("one");
