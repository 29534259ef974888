//! One plugin in several generations, for the hot-swap tests: every answer
//! names the generation that gave it, in every field, so a test can tell an
//! answer given wholly by one version from a mix of two.
//!
//! Each `generation-*` crate is one line: `generations::generation!("name");`.
//! The generation named `broken` traps in `plans`, which is the call a host
//! makes to check a plugin before it swaps it in.

#[doc(hidden)]
pub use orizuru_sdk as sdk;

/// Defines and exports the plugin of generation `$name`.
#[macro_export]
macro_rules! generation {
    ($name:literal) => {
        struct Generation;

        impl $crate::sdk::Service for Generation {
            fn plans(
                _context: $crate::sdk::Context,
            ) -> $crate::sdk::Result<Vec<$crate::sdk::Plan>> {
                if $name == "broken" {
                    panic!("generation {} cannot list its plans", $name);
                }
                Ok(vec![$crate::sdk::Plan::new(
                    $name,
                    concat!("the plan of generation ", $name),
                )])
            }

            fn bind_app(
                instance: $crate::sdk::Instance,
                app: $crate::sdk::AppBinding,
            ) -> $crate::sdk::Result<$crate::sdk::Env> {
                Ok($crate::sdk::Env::from([
                    ("GENERATION".to_owned(), $name.to_owned()),
                    (
                        "GENERATION_URL".to_owned(),
                        format!("{}://{}/{}", $name, instance.name, app.app_name),
                    ),
                    ("GENERATION_TOKEN".to_owned(), format!("{}-token", $name)),
                ]))
            }

            fn status(
                _instance: $crate::sdk::Instance,
                _context: $crate::sdk::Context,
            ) -> $crate::sdk::Result<$crate::sdk::Status> {
                Ok($crate::sdk::Status::Custom(
                    concat!("served by generation ", $name).to_owned(),
                ))
            }
        }

        $crate::sdk::export!(Generation);
    };
}
