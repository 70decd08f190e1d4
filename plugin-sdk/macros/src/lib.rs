//! The `#[handler]` attribute of `switchyard-sdk`. Use it through
//! `switchyard_sdk::handler`, not directly.
//!
//! It is written without `syn` or `quote` so that it builds with no
//! dependencies on old compilers (Rust 1.63): it reads the function's name
//! from the token stream, re-emits the function unchanged and appends the
//! ABI exports that call it.

use proc_macro::{Delimiter, TokenStream, TokenTree};

/// Turns `fn NAME(ev: Event) -> Result<(), E>` into the plugin's entry point.
///
/// On `wasm32` it adds the exports `switchyard_alloc`, `switchyard_init` and
/// `switchyard_handle` (ABI v1); on other targets it only checks the
/// function's type, so the handler can be unit-tested natively with
/// `switchyard_sdk::testing`.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return with_error("#[handler] takes no arguments", item);
    }
    match handler_name(item.clone()) {
        Ok(name) => {
            let mut out = item;
            out.extend(exports(&name));
            out
        }
        Err(message) => with_error(message, item),
    }
}

/// The name of the annotated function, or why it cannot be a handler.
fn handler_name(item: TokenStream) -> Result<String, &'static str> {
    let mut tokens = item.into_iter();
    while let Some(token) = tokens.next() {
        match token {
            // An outer attribute: `#` then `[...]`.
            TokenTree::Punct(p) if p.as_char() == '#' => {
                tokens.next();
            }
            TokenTree::Ident(ident) => match ident.to_string().as_str() {
                "async" => return Err("a #[handler] function cannot be async"),
                "fn" => {
                    let name = match tokens.next() {
                        Some(TokenTree::Ident(name)) => name.to_string(),
                        _ => return Err("#[handler] expects a function name after `fn`"),
                    };
                    if let Some(TokenTree::Punct(p)) = tokens.next() {
                        if p.as_char() == '<' {
                            return Err("a #[handler] function cannot be generic");
                        }
                    }
                    if name.starts_with("switchyard_") {
                        return Err("a #[handler] function cannot be named switchyard_*: \
                                    those are the names of the generated exports");
                    }
                    return Ok(name);
                }
                // `pub`, `const`, `unsafe`, `extern`: the compiler judges those.
                _ => {}
            },
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => break,
            _ => {}
        }
    }
    Err("#[handler] must be placed on a function: `fn handle(ev: Event) -> Result<(), Error>`")
}

/// The ABI exports that call the handler `name`.
fn exports(name: &str) -> TokenStream {
    format!(
        r#"
        const _: () = {{
            #[allow(dead_code)]
            fn __switchyard_check_handler_type() {{
                ::switchyard_sdk::__private::check_handler({name});
            }}
        }};

        #[cfg(target_arch = "wasm32")]
        const _: () = {{
            #[no_mangle]
            pub extern "C" fn switchyard_alloc(len: i32) -> i32 {{
                ::switchyard_sdk::__private::alloc(len)
            }}

            #[no_mangle]
            pub extern "C" fn switchyard_init(ptr: i32, len: i32) -> i32 {{
                unsafe {{ ::switchyard_sdk::__private::init(ptr, len) }}
            }}

            #[no_mangle]
            pub extern "C" fn switchyard_handle(ptr: i32, len: i32) -> i32 {{
                unsafe {{ ::switchyard_sdk::__private::handle(ptr, len, {name}) }}
            }}
        }};
        "#
    )
    .parse()
    .expect("generated exports are valid Rust")
}

/// `compile_error!(message)` followed by the original item, so that the
/// error is the only one reported.
fn with_error(message: &str, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = format!("::core::compile_error!({:?});", message)
        .parse()
        .expect("compile_error! is valid Rust");
    out.extend(item);
    out
}
