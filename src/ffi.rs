//! C ABI (feature `ffi`): opaque engine, session and cancel handles → the same runtime as the
//! Rust API, with error objects instead of `Result` and a token callback instead of a closure.
//!
//! Every function is safe to call with null pointers (they are reported as
//! [`VLM_ERR_INVALID_ARGUMENT`]) and never lets a panic cross into C: each body runs under
//! `catch_unwind`, and a panic becomes [`VLM_ERR_PANIC`]. Strings passed in are UTF-8 and
//! NUL-terminated; strings returned are owned by the caller and freed with
//! [`vlm_string_free`]. `include/vlm.h` is generated from this file by cbindgen.
//!
//! ```c
//! vlm_error *err = NULL;
//! vlm_engine *engine = vlm_engine_load("tiny-smolvlm", NULL, &err);
//! if (!engine) { fprintf(stderr, "%s\n", vlm_error_message(err)); vlm_error_free(err); return 1; }
//! vlm_session *session = vlm_session_new(engine);
//! char *text = vlm_ask(session, "photo.png", "Describe this image.", 64, on_token, NULL, NULL, &err);
//! vlm_string_free(text);
//! vlm_session_free(session);
//! vlm_engine_free(engine);
//! ```

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr;

use crate::engine::{Engine, EngineOptions, ModelSource};
use crate::error::Category;
use crate::generate::{CancelToken, Event, GenerateOptions};
use crate::processor::chat::Message;
use crate::processor::image::ImageInput;
use crate::session::Session;

/// Success.
pub const VLM_OK: c_int = 0;
/// A required pointer was null, or a string was not UTF-8.
pub const VLM_ERR_INVALID_ARGUMENT: c_int = 1;
/// The model could not be loaded (missing or malformed files).
pub const VLM_ERR_LOAD: c_int = 2;
/// The input was rejected (an unreadable image, a prompt too long for the context).
pub const VLM_ERR_INPUT: c_int = 3;
/// The model failed while running.
pub const VLM_ERR_RUNTIME: c_int = 4;
/// A panic inside the library was caught at the boundary; the handles passed in should be
/// freed and not used again.
pub const VLM_ERR_PANIC: c_int = 5;

/// A loaded model; share it between threads, free it with [`vlm_engine_free`].
pub struct vlm_engine {
    engine: Engine,
}

/// One conversation on an engine; use it from one thread at a time.
pub struct vlm_session {
    session: Session,
}

/// A cancellation flag that any thread may set while [`vlm_ask`] runs.
pub struct vlm_cancel {
    token: CancelToken,
}

/// An error: a code (`VLM_ERR_*`) and a one-line message naming the input and the problem.
pub struct vlm_error {
    code: c_int,
    message: CString,
}

/// Receives each piece of generated text (UTF-8, NUL-terminated, valid only during the call)
/// and the `user_data` given to [`vlm_ask`]. Returning nonzero stops the generation, which
/// then ends as cancelled with the text so far.
pub type vlm_token_callback =
    Option<unsafe extern "C" fn(piece: *const c_char, user_data: *mut c_void) -> c_int>;

/// Why a call failed, before it is turned into a [`vlm_error`].
struct Failure {
    code: c_int,
    message: String,
}

impl From<crate::Error> for Failure {
    fn from(e: crate::Error) -> Self {
        let code = match e.category() {
            Category::Load => VLM_ERR_LOAD,
            Category::Input => VLM_ERR_INPUT,
            Category::Runtime => VLM_ERR_RUNTIME,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        code: VLM_ERR_INVALID_ARGUMENT,
        message: message.into(),
    }
}

/// A C string without interior NUL bytes (they are dropped).
fn c_string(text: &str) -> CString {
    let bytes: Vec<u8> = text.bytes().filter(|b| *b != 0).collect();
    CString::new(bytes).unwrap_or_default()
}

/// Runs `body` with panics caught: its value on success, `fallback` with `*err` set otherwise.
fn guard<T>(err: *mut *mut vlm_error, fallback: T, body: impl FnOnce() -> Result<T, Failure>) -> T {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => failure,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown payload".into());
            Failure {
                code: VLM_ERR_PANIC,
                message: format!("internal error (panic caught at the C boundary): {what}"),
            }
        }
    };
    if !err.is_null() {
        let error = Box::new(vlm_error {
            code: failure.code,
            message: c_string(&failure.message),
        });
        // SAFETY: the caller passes either null (checked above) or a writable `vlm_error *`.
        unsafe { *err = Box::into_raw(error) };
    }
    fallback
}

/// A required UTF-8 string argument.
///
/// # Safety
/// `s` is null or a NUL-terminated string that outlives the call.
unsafe fn required_str<'a>(s: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if s.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-null, NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| invalid(format!("{name} is not valid UTF-8")))
}

/// An optional UTF-8 string argument (null = absent).
///
/// # Safety
/// As [`required_str`].
unsafe fn optional_str<'a>(s: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if s.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { required_str(s, name) }.map(Some)
    }
}

/// Loads a model: `model_path` is a checkpoint directory or a text-model GGUF file, and
/// `mmproj_path` the GGUF vision projector (NULL for a directory or a text-only GGUF).
/// Returns NULL on failure with `*err` set (when `err` is not NULL).
///
/// # Safety
/// The paths are NULL or NUL-terminated strings; `err` is NULL or points to writable memory.
#[no_mangle]
pub unsafe extern "C" fn vlm_engine_load(
    model_path: *const c_char,
    mmproj_path: *const c_char,
    err: *mut *mut vlm_error,
) -> *mut vlm_engine {
    guard(err, ptr::null_mut(), || {
        // SAFETY: the caller's contract on the string arguments.
        let model = unsafe { required_str(model_path, "model_path") }?;
        let mmproj = unsafe { optional_str(mmproj_path, "mmproj_path") }?;
        let source = ModelSource::local(model, mmproj.map(PathBuf::from));
        let engine = Engine::load(source, EngineOptions::default())?;
        Ok(Box::into_raw(Box::new(vlm_engine { engine })))
    })
}

/// Frees an engine (NULL is ignored). Sessions made from it keep the model alive until they
/// are freed too.
///
/// # Safety
/// `engine` is NULL or a pointer from [`vlm_engine_load`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vlm_engine_free(engine: *mut vlm_engine) {
    guard(ptr::null_mut(), (), || {
        if !engine.is_null() {
            // SAFETY: owned pointer from `Box::into_raw`, freed once by contract.
            drop(unsafe { Box::from_raw(engine) });
        }
        Ok(())
    })
}

/// A new, empty conversation on `engine`; NULL if `engine` is NULL.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn vlm_session_new(engine: *const vlm_engine) -> *mut vlm_session {
    guard(ptr::null_mut(), ptr::null_mut(), || {
        // SAFETY: NULL or a live engine by contract.
        let Some(engine) = (unsafe { engine.as_ref() }) else {
            return Ok(ptr::null_mut());
        };
        let session = engine.engine.session();
        Ok(Box::into_raw(Box::new(vlm_session { session })))
    })
}

/// Forgets the conversation so far (its messages and cache).
///
/// # Safety
/// `session` is NULL or a live session not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn vlm_session_reset(session: *mut vlm_session) {
    guard(ptr::null_mut(), (), || {
        // SAFETY: NULL or a live, exclusively used session by contract.
        if let Some(s) = unsafe { session.as_mut() } {
            s.session.reset();
        }
        Ok(())
    })
}

/// Frees a session (NULL is ignored).
///
/// # Safety
/// `session` is NULL or a pointer from [`vlm_session_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vlm_session_free(session: *mut vlm_session) {
    guard(ptr::null_mut(), (), || {
        if !session.is_null() {
            // SAFETY: owned pointer from `Box::into_raw`, freed once by contract.
            drop(unsafe { Box::from_raw(session) });
        }
        Ok(())
    })
}

/// Sends one user message — `prompt`, after the image at `image_path` when that is not
/// NULL — and returns the answer, to be freed with [`vlm_string_free`]. At most
/// `max_tokens` tokens are generated (at least 1). `callback` (may be NULL) sees the text as
/// it is produced; `cancel` (may be NULL) stops the generation when set from any thread.
/// A stopped or cancelled generation still returns the text so far. Returns NULL on failure
/// with `*err` set; the conversation is then left as it was.
///
/// # Safety
/// `session` is a live session used by no other thread during the call; strings are NULL or
/// NUL-terminated; `cancel` is NULL or live for the whole call; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn vlm_ask(
    session: *mut vlm_session,
    image_path: *const c_char,
    prompt: *const c_char,
    max_tokens: u32,
    callback: vlm_token_callback,
    user_data: *mut c_void,
    cancel: *const vlm_cancel,
    err: *mut *mut vlm_error,
) -> *mut c_char {
    guard(err, ptr::null_mut(), || {
        // SAFETY: the caller's contract on every pointer argument.
        let session = unsafe { session.as_mut() }.ok_or_else(|| invalid("session is NULL"))?;
        let prompt = unsafe { required_str(prompt, "prompt") }?;
        let image = unsafe { optional_str(image_path, "image_path") }?;
        let cancel = match unsafe { cancel.as_ref() } {
            Some(c) => c.token.clone(),
            None => CancelToken::new(),
        };
        let images = image.map(|p| ImageInput::Path(p.into()));
        let message = Message::user(images, prompt);
        let opts = GenerateOptions {
            max_new_tokens: max_tokens as usize,
            ..Default::default()
        };
        let mut on_event = |event: Event<'_>| match (event, callback) {
            (Event::Token(piece), Some(f)) => {
                let piece = c_string(piece);
                // SAFETY: a C function pointer given by the caller, with its own user data.
                if unsafe { f(piece.as_ptr(), user_data) } != 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }
            _ => ControlFlow::Continue(()),
        };
        let answer = session
            .session
            .send_streaming(message, &opts, &cancel, &mut on_event)?;
        Ok(c_string(&answer.text).into_raw())
    })
}

/// Frees a string returned by this library (NULL is ignored).
///
/// # Safety
/// `s` is NULL or a string from [`vlm_ask`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vlm_string_free(s: *mut c_char) {
    guard(ptr::null_mut(), (), || {
        if !s.is_null() {
            // SAFETY: produced by `CString::into_raw`, freed once by contract.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(())
    })
}

/// A new cancellation flag, not set.
#[no_mangle]
pub extern "C" fn vlm_cancel_new() -> *mut vlm_cancel {
    guard(ptr::null_mut(), ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(vlm_cancel {
            token: CancelToken::new(),
        })))
    })
}

/// Sets the flag: a running [`vlm_ask`] that was given it stops after the current token.
/// Safe to call from any thread.
///
/// # Safety
/// `cancel` is NULL or a live flag.
#[no_mangle]
pub unsafe extern "C" fn vlm_cancel_set(cancel: *const vlm_cancel) {
    guard(ptr::null_mut(), (), || {
        // SAFETY: NULL or live by contract; the flag is atomic.
        if let Some(c) = unsafe { cancel.as_ref() } {
            c.token.cancel();
        }
        Ok(())
    })
}

/// Frees a cancellation flag (NULL is ignored), once no call uses it.
///
/// # Safety
/// `cancel` is NULL or a pointer from [`vlm_cancel_new`] not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vlm_cancel_free(cancel: *mut vlm_cancel) {
    guard(ptr::null_mut(), (), || {
        if !cancel.is_null() {
            // SAFETY: owned pointer from `Box::into_raw`, freed once by contract.
            drop(unsafe { Box::from_raw(cancel) });
        }
        Ok(())
    })
}

/// The error's code (`VLM_ERR_*`); [`VLM_OK`] for NULL.
///
/// # Safety
/// `err` is NULL or a live error.
#[no_mangle]
pub unsafe extern "C" fn vlm_error_code(err: *const vlm_error) -> c_int {
    guard(ptr::null_mut(), VLM_ERR_PANIC, || {
        // SAFETY: NULL or live by contract.
        Ok(unsafe { err.as_ref() }.map_or(VLM_OK, |e| e.code))
    })
}

/// The error's message, valid until the error is freed; an empty string for NULL.
///
/// # Safety
/// `err` is NULL or a live error.
#[no_mangle]
pub unsafe extern "C" fn vlm_error_message(err: *const vlm_error) -> *const c_char {
    guard(ptr::null_mut(), c"".as_ptr(), || {
        // SAFETY: NULL or live by contract.
        Ok(match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => c"".as_ptr(),
        })
    })
}

/// Frees an error (NULL is ignored).
///
/// # Safety
/// `err` is NULL or an error set by this library, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vlm_error_free(err: *mut vlm_error) {
    guard(ptr::null_mut(), (), || {
        if !err.is_null() {
            // SAFETY: owned pointer from `Box::into_raw`, freed once by contract.
            drop(unsafe { Box::from_raw(err) });
        }
        Ok(())
    })
}

/// Debug builds only: panics inside the boundary guard, so that tests can check a panic
/// becomes [`VLM_ERR_PANIC`] instead of unwinding into C. Not in the header.
///
/// # Safety
/// `err` is NULL or writable.
#[cfg(debug_assertions)]
#[no_mangle]
#[allow(clippy::panic)]
pub unsafe extern "C" fn vlm_debug_panic(err: *mut *mut vlm_error) -> c_int {
    guard(err, VLM_ERR_PANIC, || panic!("vlm_debug_panic was called"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_error_codes() {
        let mut err: *mut vlm_error = ptr::null_mut();
        let code = unsafe { vlm_debug_panic(&mut err) };
        assert_eq!(code, VLM_ERR_PANIC);
        assert_eq!(unsafe { vlm_error_code(err) }, VLM_ERR_PANIC);
        let message = unsafe { CStr::from_ptr(vlm_error_message(err)) };
        assert!(message
            .to_str()
            .unwrap()
            .contains("vlm_debug_panic was called"));
        unsafe { vlm_error_free(err) };
    }

    #[test]
    fn null_arguments_are_reported() {
        let mut err: *mut vlm_error = ptr::null_mut();
        let engine = unsafe { vlm_engine_load(ptr::null(), ptr::null(), &mut err) };
        assert!(engine.is_null());
        assert_eq!(unsafe { vlm_error_code(err) }, VLM_ERR_INVALID_ARGUMENT);
        unsafe { vlm_error_free(err) };
    }
}
