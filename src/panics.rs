//! Panics from code clipdraw does not own, turned into errors.
//!
//! Two dependencies can panic on input clipdraw cannot check in advance. tiny-skia
//! 0.12 (resvg's rasterizer) indexes out of bounds on some paths with extreme
//! coordinates (linebender/tiny-skia PR #180, still open). tch panics, instead of
//! returning an error, when an operation with a scalar argument fails, e.g. on out
//! of memory. [`catch`] runs such a call and returns the panic's message instead,
//! without the panic hook printing it.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    /// Set while [`catch`] runs on this thread: the hook then keeps the message.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic inside it becomes `Err(message)` on one line. Panics
/// elsewhere, and on other threads, are reported by the hook as before.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let kept = CAUGHT.with(|c| match c.borrow_mut().as_mut() {
                Some(slot) => {
                    let p = info.payload();
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into());
                    *slot = msg.split_whitespace().collect::<Vec<_>>().join(" ");
                    true
                }
                None => false,
            });
            if !kept {
                previous(info);
            }
        }));
    });
    let outer = CAUGHT.with(|c| c.borrow_mut().replace(String::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let message = CAUGHT.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    result.map_err(|_| message.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_nested_catches_nest() {
        assert_eq!(catch(|| 3), Ok(3));
        assert_eq!(catch(|| -> () { panic!("bad\n  thing") }), Err("bad thing".to_string()));
        let outer = catch(|| {
            let inner = catch(|| -> () { panic!("inner") });
            assert_eq!(inner, Err("inner".to_string()));
            panic!("outer {}", 1)
        });
        assert_eq!(outer, Err::<(), _>("outer 1".to_string()));
    }
}
