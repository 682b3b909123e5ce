# Source it (`. scripts/cuda-env.sh`) before `cargo build --release --features cuda` where no
# system CUDA toolkit exists; docs/cuda.md says more. The CUDA wheels must be installed for the
# python it runs (${PYTHON:-python3}):
#   pip install "cuda-toolkit[nvcc,cudart,nvrtc,cublas,curand,cccl]==13.4.3"
_site=$("${PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
export CUDA_HOME="$_site/nvidia/cu13"
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "cuda-env.sh: no $CUDA_HOME/bin/nvcc: pip install the CUDA wheels first (docs/cuda.md)" >&2
    return 1
fi
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" # no GPU to ask at build time: 90 = H100/H200
export PATH="$CUDA_HOME/bin:$PATH"
# For the linker only: the unversioned names the wheels lack, and a libcuda.so stub (the real
# libcuda.so.1 comes with the GPU driver; each stub function returns CUDA_ERROR_STUB_LIBRARY).
_link="${CUDA_LINK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kdbench-cuda-link}"
mkdir -p "$_link"
for _l in "$CUDA_HOME"/lib/lib{cudart,nvrtc,cublas,cublasLt,curand}.so.* "$_site"/nvidia/cudnn/lib/libcudnn.so.*; do
    [ -e "$_l" ] && ln -sf "$_l" "$_link/$(basename "${_l%.so.*}").so"
done
gcc -E -P "$CUDA_HOME/include/cuda.h" | grep -oE '\bcu[A-Z][A-Za-z0-9_]* *\(' | tr -d ' (' | sort -u |
    sed 's/.*/int &(void) { return 34; }/' >"$_link/cuda_stub.c" &&
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$_link/libcuda.so" "$_link/cuda_stub.c" || return 1
export LIBRARY_PATH="$_link${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _site _link _l
