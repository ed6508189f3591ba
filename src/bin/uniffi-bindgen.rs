//! `uniffi-bindgen` (feature `uniffi-bindgen`): the built library → Swift, Kotlin or Python
//! sources for its UniFFI interface; see bindings/README.md.

fn main() {
    uniffi::uniffi_bindgen_main()
}
