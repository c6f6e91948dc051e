-- Fragment (an expression over a row's sparse histogram `slots` / `counts`, sorted by slot): the same histogram laid out dense, position 1 = the 0 ms bucket (-32768), position i + 2 = bucket i, zeros between; linear in its length, so adding a range's rows is one vectorized sumForEach.
arrayFlatten(arrayMap(
    (position, count, previous) -> arrayConcat(arrayWithConstant(position - previous - 1, toInt64(0)), [count]),
    arrayMap(slot -> if(slot = -32768, 1, toInt32(slot) + 2), slots) AS h_positions,
    counts,
    arrayPopBack(arrayPushFront(h_positions, 0))))
