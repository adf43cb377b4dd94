labels = { b = true }
uniq = ["x"]
