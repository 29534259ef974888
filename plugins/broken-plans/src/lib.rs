//! A plugin that traps in `plans`, the call a host makes to check a
//! plugin before swapping it in.

generations::generation!("broken");
