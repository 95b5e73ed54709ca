{
  # A node-gyp entry for tools that only speak node-gyp. The project's own
  # build is cmake-js (CMakeLists.txt). Both take LibTorch's flags from
  # cmake/TorchFlags.cmake: scripts/torch-flags.js prints them here.
  "targets": [
    {
      "target_name": "tabsight",
      "sources": [
        "<!@(node -e \"const g=require('fs');const p=require('path');const w=(d)=>g.readdirSync(d,{withFileTypes:true}).flatMap((e)=>e.isDirectory()?w(p.join(d,e.name)):e.name.endsWith('.cc')?[p.join(d,e.name)]:[]);console.log(w('native').join(' '))\")"
      ],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/torch-flags.js includes)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "<!@(node scripts/torch-flags.js defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "<!@(node scripts/torch-flags.js cflags)"],
      "libraries": ["<!@(node scripts/torch-flags.js libs)"],
      "ldflags": ["<!@(node scripts/torch-flags.js ldflags)"]
    }
  ]
}
