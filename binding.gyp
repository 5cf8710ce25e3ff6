{
  "targets": [
    {
      "target_name": "alexnet_cuda",
      "sources": [
        "<!@(node -p \"['native','native/ops','native/bind','native/data'].filter(d => require('fs').existsSync(d)).flatMap(d => require('fs').readdirSync(d).filter(f => f.endsWith('.cc')).map(f => d + '/' + f)).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        "NAPI_VERSION=9",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "AXN_BUILD_SYSTEM=\"node-gyp\"",
        "AXN_JPEG_REASON=\"built with node-gyp, which builds without libjpeg-turbo; install cmake and libjpeg62-turbo-dev, then npm rebuild\"",
        "AXN_MPI_REASON=\"built with node-gyp, which builds without MPI; install cmake and MPI (Debian: apt-get install openmpi-bin libopenmpi-dev), then npm rebuild alexnet-cuda\"",
        "AXN_CUDA_REASON=\"built with node-gyp, which builds the CPU-only addon; install cmake and the CUDA toolkit, then npm rebuild, for the CUDA backend\""
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-Wno-unused-parameter"],
      "ldflags": ["-fopenmp"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LIBRARY": "libc++",
        "MACOSX_DEPLOYMENT_TARGET": "11.0"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1 }
      }
    }
  ]
}
