# The toolchain of the C SDK, read by install, build and the Makefile. The
# Debian packages are the versions tested; install takes whichever Debian 12
# ships (security updates replace them, and the archive drops the old ones).
CLANG_DEB_VERSION="1:19.1.7-3~deb12u1"
WASI_LIBC_DEB_VERSION="0.0~git20220510.9886d3d-2"
# cJSON (MIT) is compiled for wasm32 into the SDK from Debian's source
# package, with Debian's patches applied; install keeps it in a cache.
CJSON_DEB_VERSION="1.7.15-1+deb12u4"
# guest-sdk/c/tool: wit-bindgen-c 0.61.1, wit-component 0.258.3 and the WASI
# preview1 reactor adapter of wasi-preview1-component-adapter-provider
# 48.0.8, pinned in tool/Cargo.toml and tool/Cargo.lock. Bump the number in
# both places (and in tool/src/main.rs) whenever the tool changes.
TOOL_VERSION="orizuru-c-tool 1 (wit-bindgen-c 0.61.1, wit-component 0.258.3, adapter 48.0.8)"
