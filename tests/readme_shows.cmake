# Fails unless README.md shows FILE verbatim (so the quick start in the README compiles as written).
file(READ "${README}" readme)
file(READ "${FILE}" code)
string(FIND "${readme}" "${code}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md does not show ${FILE} verbatim: copy the file into its code block")
endif()
