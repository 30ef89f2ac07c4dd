{
  "targets": [
    {
      "target_name": "seine",
      "sources": ["seine.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-format-truncation"]
    }
  ]
}
