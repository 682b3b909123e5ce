//! Run-time selection of vector instructions for the element-wise CPU kernels.
//!
//! The crate is built for the baseline x86-64 target (so the binary runs anywhere), which
//! limits auto-vectorised loops to 128-bit SSE. [`multiversion!`] compiles one function body
//! three times, for AVX-512, AVX2+FMA and the baseline, and picks the widest the CPU
//! supports on each call, capped by `HARNESS_SIMD` (`crate::util::cpu::simd`, read once). The
//! bodies must not depend on vector width for their results: sums use fixed lane counts.

/// `multiversion! { pub fn name(arg: Type, …) -> Ret { body } }` defines `name` as a
/// dispatcher over AVX-512, AVX2+FMA and baseline copies of `body`.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                let level = $crate::util::cpu::simd();
                if level >= $crate::util::cpu::Simd::Avx512 {
                    // SAFETY: the CPU supports every feature the copy was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if level >= $crate::util::cpu::Simd::Avx2 {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;
