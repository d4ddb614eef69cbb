//! A `cdylib` with a C function and no abi_stable root module: what a user gets by
//! pointing `[[plugins]] path` at the wrong library.

#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin_add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}
