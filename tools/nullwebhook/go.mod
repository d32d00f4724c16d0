module grove-py/tools/nullwebhook

go 1.22
