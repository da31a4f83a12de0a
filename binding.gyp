{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": [
        "native/addon.cc",
        "native/nfqueue.cc",
        "native/nfqueue_msg.cc",
        "native/verdict_sender.cc",
        "native/tun.cc",
        "native/inject.cc",
        "native/rtnl.cc",
        "native/notify.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lmnl", "-lnetfilter_queue"]
    }
  ]
}
