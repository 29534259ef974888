//! Generation two of the hot-swap test plugin.

generations::generation!("two");
